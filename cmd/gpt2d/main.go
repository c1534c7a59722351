package main
import (
 _ "gorgonia.org/tensor"
 _ "github.com/sugarme/tokenizer"
 _ "github.com/sugarme/tokenizer/pretrained"
 _ "github.com/gofiber/fiber/v2"
 _ "github.com/gofiber/contrib/jwt"
 _ "github.com/golang-jwt/jwt/v5"
 _ "go.etcd.io/bbolt"
 _ "golang.org/x/crypto/bcrypt"
 _ "golang.org/x/sys/cpu"
 _ "golang.org/x/term"
)
func main(){}
