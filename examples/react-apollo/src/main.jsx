import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { ApolloProvider } from '@apollo/client/react';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient } from 'graphql-ws';
import { App } from './App.jsx';

// The gateway: ?gateway=http://host:port, else VITE_KCK_URL, else go run .'s.
const params = new URLSearchParams(location.search);
const gateway = params.get('gateway') || import.meta.env.VITE_KCK_URL || 'http://localhost:8080';
const authorId = Number(params.get('author') || 42);
// ?live=0: no subscriptions (the browser test checks read-your-writes alone).
const live = params.get('live') !== '0';

// Queries and mutations over HTTP, subscriptions over graphql-ws.
const http = new HttpLink({ uri: `${gateway}/graphql` });
const ws = new GraphQLWsLink(createClient({ url: `${gateway.replace(/^http/, 'ws')}/graphql` }));
const link = ApolloLink.split((op) => op.operationType === 'subscription', ws, http);

// Identities of KCK's types (README: "Identities for client caches"):
// Title and Author by id (the default), the others by their key fields.
const cache = new InMemoryCache({
  typePolicies: {
    AuthorStats: { keyFields: ['authorId'] },
    TopAuthor: { keyFields: ['authorId'] },
    Product: { keyFields: ['key'] },
    AddTitlePayload: { keyFields: false },
    UpdateResult: { keyFields: false },
  },
});

const client = new ApolloClient({ link, cache });

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <ApolloProvider client={client}>
      <App authorId={authorId} live={live} />
    </ApolloProvider>
  </StrictMode>,
);
