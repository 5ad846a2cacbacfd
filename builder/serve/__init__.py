"""A bundle in the browser: the demo server with its JSON API, the static site, and the web assets
both hand out (the URL layout, the esbuild worker bundle)."""
