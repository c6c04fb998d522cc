package remote

// SmallVerifySteps makes every verification step list at most pages
// pages of keys keys, so that a pass spans many pages and probes, until
// the returned function restores the defaults. Tests that call it must
// not run in parallel with others.
func SmallVerifySteps(pages int, keys int32) (restore func()) {
	p, k := verifyPages, verifyPageKeys
	verifyPages, verifyPageKeys = pages, keys
	return func() { verifyPages, verifyPageKeys = p, k }
}
