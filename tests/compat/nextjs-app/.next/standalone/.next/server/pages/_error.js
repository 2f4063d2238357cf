var R=require("../chunks/ssr/[turbopack]_runtime.js")("server/pages/_error.js")
R.c("server/chunks/ssr/[root-of-the-server]__334aff55._.js")
R.c("server/chunks/ssr/[root-of-the-server]__f1341afc._.js")
R.c("server/chunks/ssr/node_modules_next_f71b9665._.js")
R.c("server/chunks/ssr/[externals]_next_dist_shared_lib_no-fallback-error_external_59b92b38.js")
R.c("server/chunks/ssr/node_modules_b235d39a._.js")
R.m(26644)
module.exports=R.m(26644).exports
