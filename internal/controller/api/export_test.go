package api

// MaxSmallBody is the size limit of token requests and apply, for the tests.
const MaxSmallBody = maxSmallBody
