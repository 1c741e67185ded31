// PostGraphile v4 (v5 needs Node 22): the GraphQL API it derives from the
// database. titleList(authorId) is the SQL function bench/cmd/peers/title_list.sql
// creates (a stable function returning setof titles is a query field; simple
// collections make it a plain list). No response cache: PostGraphile has none.
const http = require('node:http');
const { postgraphile } = require('postgraphile');

const url = process.env.PEER_POSTGRES_URL;
const port = Number(process.env.PEER_PORT);
if (!url || !port) throw new Error('PEER_POSTGRES_URL and PEER_PORT must be set');
// Simple collections name a list field with a List suffix (titleListList);
// the function's field is named as the function, as KCK's is.
const sameNameForLists = (builder) =>
  builder.hook('inflection', (inflection) => ({
    ...inflection,
    functionQueryNameList(proc) {
      return this.functionQueryName(proc);
    },
  }));
const handler = postgraphile(url, 'public', {
  appendPlugins: [sameNameForLists],
  simpleCollections: 'only',
  disableQueryLog: true,
  graphiql: false,
  watchPg: false,
  retryOnInitFail: false,
  setofFunctionsContainNulls: false,
  disableDefaultMutations: true,
  ignoreRBAC: true,
  ignoreIndexes: false,
});
http.createServer(handler).listen(port, '127.0.0.1');
