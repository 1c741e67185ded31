// A client of ten lines instead of a library's: GraphQL Code Generator's
// typed documents carry their hash (document.__meta__.hash), and a request
// names its document by that hash alone, as the gateway's trusted
// documents expect (--trusted-documents src/gql/persisted-documents.json).
// Queries go by GET (a CDN may cache them: the answer has Cache-Control
// and ETag), mutations by POST, subscriptions over graphql-ws with the hash
// in extensions.persistedQuery. No document text leaves the app.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { createClient } from 'graphql-ws';

type Doc<R, V> = TypedDocumentNode<R, V> & { __meta__?: { hash?: string } };

function hashOf(doc: Doc<unknown, unknown>): string {
  const hash = doc.__meta__?.hash;
  if (!hash) throw new Error('not a persisted document: run npm run codegen');
  return hash;
}

function nameOf(doc: Doc<unknown, unknown>): string | undefined {
  const op = doc.definitions.find((d) => d.kind === 'OperationDefinition');
  return op && 'name' in op ? op.name?.value : undefined;
}

export function kck(gateway: string) {
  const url = `${gateway}/graphql`;
  async function answer<R>(res: Response): Promise<R> {
    const body = await res.json();
    if (body.errors?.length) throw new Error(body.errors.map((e: { message: string }) => e.message).join('; '));
    return body.data as R;
  }
  const ws = createClient({ url: url.replace(/^http/, 'ws') });
  return {
    query<R, V>(doc: Doc<R, V>, variables: V): Promise<R> {
      const params = new URLSearchParams({ documentId: hashOf(doc), variables: JSON.stringify(variables) });
      return fetch(`${url}?${params}`, { headers: { accept: 'application/graphql-response+json' } }).then(answer<R>);
    },
    mutate<R, V>(doc: Doc<R, V>, variables: V): Promise<R> {
      return fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
        body: JSON.stringify({ documentId: hashOf(doc), operationName: nameOf(doc), variables }),
      }).then(answer<R>);
    },
    subscribe<R, V>(doc: Doc<R, V>, variables: V, next: (data: R) => void, error: (e: unknown) => void): () => void {
      return ws.subscribe(
        // graphql-transport-ws wants a query string: empty, the hash names it.
        { query: '', operationName: nameOf(doc), variables: variables as Record<string, unknown>,
          extensions: { persistedQuery: { version: 1, sha256Hash: hashOf(doc) } } },
        { next: (r) => r.data && next(r.data as R), error, complete: () => {} },
      );
    },
  };
}
