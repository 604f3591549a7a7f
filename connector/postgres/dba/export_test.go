package dba

// WaitVisible exposes waitVisible to the package's tests.
var WaitVisible = waitVisible
