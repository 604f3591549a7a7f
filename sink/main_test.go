package sink_test

import (
	"testing"

	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
