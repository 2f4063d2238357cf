// A plain node:http server for bext's process runtime (docs/process.md):
// it listens on the port bext gives it in PORT, answers which process and
// instance served the request, and stops cleanly on SIGTERM.
const http = require("node:http");
const fs = require("node:fs");

const port = Number(process.env.PORT);
const instance = process.env.BEXT_INSTANCE;
const version = fs.existsSync("VERSION") ? fs.readFileSync("VERSION", "utf8").trim() : "dev";

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "text/plain" });
    return res.end("ok\n");
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      pid: process.pid,
      instance,
      version,
      path: req.url,
      greeting: process.env.GREETING || null,
      sees_admin_token: "BEXT_ADMIN_TOKEN" in process.env,
    }) + "\n",
  );
});

server.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${port} (version ${version})`);
});

process.on("SIGTERM", () => {
  console.log("SIGTERM: closing");
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
