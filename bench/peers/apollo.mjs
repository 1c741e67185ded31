// Apollo Server with its full-response cache (@apollo/server-plugin-response-cache):
// every field is cacheable for an hour (cache control's defaultMaxAge), public
// scope, the plugin's default in-memory LRU. After the first request per author
// every request is a hit.
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { ApolloServerPluginCacheControl } from '@apollo/server/plugin/cacheControl';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import responseCachePlugin from '@apollo/server-plugin-response-cache';
import { typeDefs, pool, titleList, port } from './common.mjs';

const db = pool();
const server = new ApolloServer({
  typeDefs,
  resolvers: { Query: { titleList: titleList(db) } },
  plugins: [
    ApolloServerPluginCacheControl({ defaultMaxAge: 3600 }),
    responseCachePlugin.default ? responseCachePlugin.default() : responseCachePlugin(),
    ApolloServerPluginLandingPageDisabled(),
  ],
});
await startStandaloneServer(server, { listen: { port: port(), host: '127.0.0.1' } });
