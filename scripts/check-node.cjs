// Fails fast when npm scripts would run under a Node older than the project's own (Node 24 comes
// from the `node` devDependency; an install with --ignore-scripts silently falls back to the system Node).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `FHIR Trail needs Node.js 24 (found ${process.version} at ${process.execPath}).\n` +
      'Run `npm ci` without --ignore-scripts so node_modules/.bin/node (Node 24) is installed, then use npm scripts.\n',
  );
  process.exit(1);
}
