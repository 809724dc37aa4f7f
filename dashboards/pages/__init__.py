"""One module per page of the dashboards site; each builder takes a `Ctx` and returns a `PageOut`."""
