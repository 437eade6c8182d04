// @ts-check
/** Two projects: fast unit specs beside the code, and end-to-end specs in test/ that start the
 * real apps on real Redis, PostgreSQL and the embedded EVM. swc strips types only; `npm run
 * typecheck` (tsc --noEmit) is what checks them. */
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2023',
      keepClassNames: true,
    },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  },
];
const moduleNameMapper = {
  '^@fhir-trail/(config|fhir-client|fhir-mapping|jobs|ledger|runtime|store)$': '<rootDir>/libs/$1/src',
};
const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': swc, '^.+/node_modules/content-disposition/.+\\.js$': swc },
  // content-disposition 3 (via @fastify/static, for /docs) ships ESM in .js files; swc makes it CommonJS.
  transformIgnorePatterns: ['/node_modules/(?!content-disposition/)'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper,
};

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/(apps|libs|scripts)/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
    },
  ],
  // A global option (jest ignores it inside projects): e2e hooks start real apps, an embedded
  // chain and PostgreSQL databases, which can take more than the default 5 s on a loaded machine.
  testTimeout: 60_000,
};
