package weights

import "unsafe"

// f32Bytes views a float32 slice as its little-endian bytes (amd64 and
// arm64 are little-endian) without copying.
func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}
