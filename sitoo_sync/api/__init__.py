"""api/: the HTTP edge. Everything that talks to Sitoo goes through `SitooClient`."""
