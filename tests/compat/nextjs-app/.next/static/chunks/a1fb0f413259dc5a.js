__turbopack_load_page_chunks__("/_app", [
  "static/chunks/e60ef129113f6e24.js",
  "static/chunks/7a49d05a14f9fc47.js",
  "static/chunks/turbopack-0f46fa453dbc6b24.js"
])
