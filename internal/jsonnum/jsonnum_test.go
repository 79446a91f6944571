package jsonnum

import (
	"encoding/json"
	"math"
	"testing"
)

func TestFloatRoundTrip(t *testing.T) {
	type line struct {
		Loss Float   `json:"loss"`
		Err  float64 `json:"err"`
	}
	for _, tc := range []struct {
		loss float64
		want string
	}{
		{0.25, `{"loss":0.25,"err":0.5}`},
		{1e-7, `{"loss":1e-7,"err":0.5}`}, // formatted as encoding/json formats a float64
		{math.NaN(), `{"loss":null,"err":0.5}`},
		{math.Inf(1), `{"loss":null,"err":0.5}`},
		{math.Inf(-1), `{"loss":null,"err":0.5}`},
	} {
		b, err := json.Marshal(line{Loss: Float(tc.loss), Err: 0.5})
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.loss, b, err, tc.want)
			continue
		}
		var back line
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		finite := !math.IsNaN(tc.loss) && !math.IsInf(tc.loss, 0)
		if back.Loss.Finite() != finite || (finite && float64(back.Loss) != tc.loss) || (!finite && !math.IsNaN(float64(back.Loss))) {
			t.Errorf("%s read back as %v", b, back.Loss)
		}
	}
	var f Float
	if err := json.Unmarshal([]byte(`"x"`), &f); err == nil {
		t.Error("a string read as a number")
	}
}
