// GraphQL Code Generator: typed documents for the app's operations, from the
// schema the gateway serves (schema.graphql, written by `kck schema`, since a
// gateway run with --production answers no introspection). `make codegen`
// writes both; `make check-codegen` (part of make test) fails when either is
// out of date.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: ['src/**/*.ts', '!src/gql/**'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        // KCK's scalars: Time is an RFC 3339 string, JSON any JSON value.
        scalars: { Time: 'string', JSON: 'unknown' },
        useTypeImports: true,
        enumsAsTypes: true,
      },
    },
  },
};

export default config;
