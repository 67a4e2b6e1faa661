// One jest config with a project per tier (STYLE.md). Nest 12, Prisma 7's runtime and a few
// other dependencies ship ESM only; @swc/jest compiles them to CommonJS alongside our sources.
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
      target: 'es2022',
      keepClassNames: true,
    },
    module: { type: 'commonjs' },
  },
];

const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: ['/node_modules/(?!(@nestjs|@prisma|bullmq|ioredis|@standard-schema)/)'],
  moduleNameMapper: {
    '^@farm/([a-z-]+)$': '<rootDir>/libs/$1/src',
    // Prisma's generated client imports its siblings as ./x.js (ESM style); resolve them to ./x.ts.
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
};

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{apps,libs}/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.spec.ts'],
    },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.spec.ts'] },
    // Faults injected into a whole farm (npm run test:faults; docs/RELIABILITY.md). Part of npm test.
    { ...common, displayName: 'faults', testMatch: ['<rootDir>/test/faults/**/*.spec.ts'] },
    // Hundreds of builds under random faults: too long for CI, run by npm run test:faults only.
    { ...common, displayName: 'soak', testMatch: ['<rootDir>/test/soak/**/*.spec.ts'] },
  ],
};
