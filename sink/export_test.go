package sink

// ValidID is validID, for the external tests.
var ValidID = validID
