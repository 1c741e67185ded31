import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { Client, Provider, fetchExchange, subscriptionExchange } from 'urql';
import { cacheExchange } from '@urql/exchange-graphcache';
import { createClient } from 'graphql-ws';
import { App, TITLES } from './App.jsx';

// The gateway: ?gateway=http://host:port, else VITE_KCK_URL, else go run .'s.
const params = new URLSearchParams(location.search);
const gateway = params.get('gateway') || import.meta.env.VITE_KCK_URL || 'http://localhost:8080';
const authorId = Number(params.get('author') || 42);
// ?live=0: no subscriptions (the browser test checks read-your-writes alone).
const live = params.get('live') !== '0';

const ws = createClient({ url: `${gateway.replace(/^http/, 'ws')}/graphql` });

// Writes a list of titles pushed or returned by KCK into the query at the
// root (a list is a field of the query, not an entity).
function writeTitles(cache, authorId, titleList) {
  if (!titleList) return;
  cache.updateQuery({ query: TITLES, variables: { authorId, key: `title_list/${authorId}` } }, (q) => q && { ...q, titleList });
}

const client = new Client({
  url: `${gateway}/graphql`,
  exchanges: [
    // The normalised cache, with KCK's identities (README: "Identities for
    // client caches"): Title by id (the default), the others by key fields,
    // the payloads embedded.
    cacheExchange({
      keys: {
        AuthorStats: (d) => String(d.authorId),
        TopAuthor: (d) => String(d.authorId),
        Product: (d) => d.key,
        AddTitlePayload: () => null,
        UpdateResult: () => null,
      },
      updates: {
        Mutation: {
          // Read-your-writes: the payload's list is the fresh one.
          addTitle: (result, args, cache) => writeTitles(cache, args.authorId, result.addTitle?.titleList),
        },
        Subscription: {
          titleList: (result, args, cache) => writeTitles(cache, args.authorId, result.titleList),
        },
      },
    }),
    fetchExchange,
    // Subscriptions over graphql-ws (graphql-transport-ws).
    subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || '' };
        return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
      },
    }),
  ],
});

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <Provider value={client}>
      <App authorId={authorId} live={live} />
    </Provider>
  </StrictMode>,
);
