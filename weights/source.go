package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SourceInfoFile is the name of the file in a Hugging Face model directory
// that records where `gpt2d weights fetch` got it from. Convert copies it
// into the converted file's provenance.
const SourceInfoFile = "gpt2d-source.json"

// SourceInfo is the provenance of a downloaded model directory.
type SourceInfo struct {
	// Endpoint is the Hub it came from, e.g. "https://huggingface.co".
	Endpoint string `json:"endpoint,omitempty"`
	// Repo is the Hub repository, e.g. "openai-community/gpt2".
	Repo string `json:"repo"`
	// Revision is the branch, tag or commit asked for.
	Revision string `json:"revision"`
	// Commit is the commit the revision resolved to, if the Hub said.
	Commit string `json:"commit,omitempty"`
	// SHA256 maps file names to the SHA-256 verified at download (the
	// Hub publishes it for LFS files such as model.safetensors).
	SHA256 map[string]string `json:"sha256,omitempty"`
}

// ReadSourceInfo reads dir's SourceInfoFile. A directory without one (a
// checkpoint placed by hand) gives a zero SourceInfo and no error.
func ReadSourceInfo(dir string) (SourceInfo, error) {
	var si SourceInfo
	data, err := os.ReadFile(filepath.Join(dir, SourceInfoFile))
	if errors.Is(err, fs.ErrNotExist) {
		return si, nil
	}
	if err != nil {
		return si, err
	}
	if err := json.Unmarshal(data, &si); err != nil {
		return si, fmt.Errorf("%s: %w", filepath.Join(dir, SourceInfoFile), err)
	}
	return si, nil
}

// WriteSourceInfo writes si as dir's SourceInfoFile, atomically.
func WriteSourceInfo(dir string, si SourceInfo) error {
	data, err := json.MarshalIndent(si, "", "  ")
	if err != nil {
		return err
	}
	return atomicWrite(filepath.Join(dir, SourceInfoFile), func(f *os.File) error {
		_, err := f.Write(append(data, '\n'))
		return err
	})
}
