// `next start` needs a few files of `next` that the standalone trace leaves
// out: its command line, and the webpack its config loader requires. They
// are copied beside the traced ones, with the `.bin/next` link npm makes, so
// .next/standalone/node_modules runs `next start` too, without npm
// (tests/e2e/compat.rs). The list is what `next start` opened, under strace,
// serving the fixture's pages, assets and a 404.
const fs = require('fs');
const path = require('path');

const from = path.join(__dirname, 'node_modules/next');
const to = path.join(__dirname, '.next/standalone/node_modules/next');
for (const file of [
  'dist/bin/next',
  'dist/cli/next-start.js',
  'dist/lib/format-cli-help-output.js',
  'dist/lib/helpers/get-reserved-port.js',
  'dist/compiled/@babel/runtime/package.json',
  'dist/compiled/loader-runner',
  'dist/compiled/webpack',
]) {
  fs.cpSync(path.join(from, file), path.join(to, file), { recursive: true });
}
const bin = path.join(__dirname, '.next/standalone/node_modules/.bin');
fs.mkdirSync(bin, { recursive: true });
fs.rmSync(path.join(bin, 'next'), { force: true });
fs.symlinkSync('../next/dist/bin/next', path.join(bin, 'next'));
