package connector

type txState struct{}
