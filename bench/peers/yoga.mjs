// GraphQL Yoga with its response cache (@graphql-yoga/plugin-response-cache,
// Yoga's wrapper of @envelop/response-cache that also answers a cached
// response before parsing). One cache for every caller (session null), an hour's TTL:
// after the first request per author every request is a hit.
import { createServer } from 'node:http';
import { createYoga, createSchema } from 'graphql-yoga';
import { useResponseCache } from '@graphql-yoga/plugin-response-cache';
import { typeDefs, pool, titleList, port } from './common.mjs';

const db = pool();
const yoga = createYoga({
  schema: createSchema({ typeDefs, resolvers: { Query: { titleList: titleList(db) } } }),
  plugins: [useResponseCache({ session: () => null, ttl: 3600_000 })],
  graphiql: false,
  logging: 'warn',
});
createServer(yoga).listen(port(), '127.0.0.1');
