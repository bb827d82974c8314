"""The CSMS's web dashboard: static pages (plain HTML, JS, CSS in this package; nothing fetched at run time) and the
endpoints only they use (the live event stream, a summary). Everything else it shows comes from the REST API."""
