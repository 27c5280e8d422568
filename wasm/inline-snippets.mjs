// Inlines the JavaScript snippets that wasm-bindgen's glue imports from snippets/ (wasm/js/*.js
// used from Rust) into the glue module itself, then removes snippets/: a page then loads the
// package's JavaScript in one request instead of one for the glue and one more round for its
// snippets. Each snippet runs in its own function scope, so its names cannot meet the glue's.
//
//   node wasm/inline-snippets.mjs target/wasm-pkg
//
// A snippet that imports another module, or exports in a form not handled here, stops the
// build with its name.
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node wasm/inline-snippets.mjs PACKAGE_DIR');
  process.exit(2);
}
const gluePath = path.join(dir, 'encore_wasm.js');
const glue = fs.readFileSync(gluePath, 'utf8').replace(
  /^import \{ ([^}]+) \} from '\.\/(snippets\/[^']+)';$/gm,
  (_, names, file) => {
    const source = fs.readFileSync(path.join(dir, file), 'utf8');
    if (/^\s*import\b/m.test(source)) throw new Error(`${file} imports another module`);
    const body = source.replace(/^export (async function|function|const|let|class) /gm, '$1 ');
    if (/^\s*export\b/m.test(body)) throw new Error(`${file} exports in a form not inlined here`);
    const list = names.split(',').map((n) => n.trim()).join(', ');
    return `// ${file}, inlined by wasm/inline-snippets.mjs\nconst { ${list} } = (() => {\n${body}\nreturn { ${list} };\n})();`;
  },
);
if (glue.includes("from './snippets/")) throw new Error(`${gluePath}: a snippet import is left`);
fs.writeFileSync(gluePath, glue);
fs.rmSync(path.join(dir, 'snippets'), { recursive: true, force: true });
