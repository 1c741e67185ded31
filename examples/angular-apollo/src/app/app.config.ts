import { ApplicationConfig, inject, provideZonelessChangeDetection } from '@angular/core';
import { provideHttpClient } from '@angular/common/http';
import { provideApollo } from 'apollo-angular';
import { HttpLink } from 'apollo-angular/http';
import { ApolloLink, InMemoryCache } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient } from 'graphql-ws';

// The gateway: ?gateway=http://host:port, else go run .'s.
const params = new URLSearchParams(location.search);
export const gateway = params.get('gateway') || 'http://localhost:8080';
export const authorId = Number(params.get('author') || 42);
// ?live=0: no subscriptions (the browser test checks read-your-writes alone).
export const live = params.get('live') !== '0';

export const appConfig: ApplicationConfig = {
  providers: [
    provideZonelessChangeDetection(),
    provideHttpClient(),
    provideApollo(() => {
      // Queries and mutations over HTTP, subscriptions over graphql-ws.
      const http = inject(HttpLink).create({ uri: `${gateway}/graphql` });
      const ws = new GraphQLWsLink(createClient({ url: `${gateway.replace(/^http/, 'ws')}/graphql` }));
      return {
        link: ApolloLink.split((op) => op.operationType === 'subscription', ws, http),
        // Identities of KCK's types (README: "Identities for client caches"):
        // Title and Author by id (the default), the others by key fields.
        cache: new InMemoryCache({
          typePolicies: {
            AuthorStats: { keyFields: ['authorId'] },
            TopAuthor: { keyFields: ['authorId'] },
            Product: { keyFields: ['key'] },
            AddTitlePayload: { keyFields: false },
            UpdateResult: { keyFields: false },
          },
        }),
      };
    }),
  ],
};
