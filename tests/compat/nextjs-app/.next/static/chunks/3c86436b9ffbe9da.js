__turbopack_load_page_chunks__("/_error", [
  "static/chunks/17722e3ac4e00587.js",
  "static/chunks/7a49d05a14f9fc47.js",
  "static/chunks/turbopack-143738a8fa5cc800.js"
])
