"""HTTP plumbing shared by the API, the pages and the desk: requests, middleware, templates."""
