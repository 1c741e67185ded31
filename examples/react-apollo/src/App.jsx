import { useState } from 'react';
import { gql } from '@apollo/client';
import { useMutation, useQuery, useSubscription } from '@apollo/client/react';

const TITLES = gql`
  query Titles($authorId: Int!, $key: String!) {
    titleList(authorId: $authorId) { id title year }
    authorStats(authorId: $authorId) { authorId titleCount lastYear }
    freshness: product(key: $key) { key version computedAt stale }
  }
`;

// The typed mutation: its payload holds the affected products, typed. The
// AuthorStats and the Product (freshness) it returns replace the cached ones
// by identity; the list at the root is written into the query below.
const ADD_TITLE = gql`
  mutation AddTitle($authorId: Int!, $title: String!, $year: Int!) {
    addTitle(authorId: $authorId, title: $title, year: $year) {
      title { id title year }
      titleList { id title year }
      authorStats { authorId titleCount lastYear }
      products { key version computedAt stale }
    }
  }
`;

// Live updates: the gateway pushes each new version of these products.
// AuthorStats and Product (freshness) land in the cache by identity; the
// list at the root is written into the query in onData.
const LIVE_TITLES = gql`
  subscription LiveTitles($authorId: Int!) {
    titleList(authorId: $authorId) { id title year }
  }
`;
const LIVE_STATS = gql`
  subscription LiveStats($authorId: Int!) {
    authorStats(authorId: $authorId) { authorId titleCount lastYear }
  }
`;
const LIVE_FRESHNESS = gql`
  subscription LiveFreshness($key: String!) {
    product(key: $key) { key version computedAt stale }
  }
`;

export function App({ authorId, live: subscribe }) {
  const variables = { authorId, key: `title_list/${authorId}` };
  const { data, error, loading } = useQuery(TITLES, { variables });
  const [addTitle, added] = useMutation(ADD_TITLE, {
    // Read-your-writes without a refetch: the payload's list is the fresh one.
    update(cache, { data: d }) {
      cache.updateQuery({ query: TITLES, variables }, (q) => q && { ...q, titleList: d.addTitle.titleList });
    },
  });
  const live = useSubscription(LIVE_TITLES, {
    variables: { authorId },
    skip: !subscribe,
    onData({ client, data: d }) {
      const titleList = d.data?.titleList;
      if (titleList) client.cache.updateQuery({ query: TITLES, variables }, (q) => q && { ...q, titleList });
    },
  });
  useSubscription(LIVE_STATS, { variables: { authorId }, skip: !subscribe });
  useSubscription(LIVE_FRESHNESS, { variables: { key: variables.key }, skip: !subscribe });
  const [title, setTitle] = useState('');
  const [year, setYear] = useState(String(new Date().getFullYear()));

  if (loading) return <p>Loading…</p>;
  if (error) return <p role="alert">{error.message}</p>;
  const { titleList, authorStats, freshness } = data;

  async function submit(e) {
    e.preventDefault();
    try {
      await addTitle({ variables: { authorId, title, year: Number(year) } });
      setTitle('');
    } catch {
      // shown from added.error
    }
  }

  return (
    <main>
      <h1>Titles of author {authorId}</h1>
      <p data-testid="live">{!subscribe ? 'not subscribed' : live.error ? `not live: ${live.error.message}` : live.data ? 'live' : 'connecting…'}</p>
      <p data-testid="stats">
        {authorStats ? `${authorStats.titleCount} titles, the latest from ${authorStats.lastYear}` : 'no statistics'}
      </p>
      <p data-testid="freshness">
        version <code data-testid="version">{freshness.version}</code>, computed{' '}
        <time dateTime={freshness.computedAt}>{new Date(freshness.computedAt).toLocaleTimeString()}</time>,{' '}
        <span data-testid="stale">{freshness.stale ? 'stale' : 'fresh'}</span>
      </p>
      <ul data-testid="titles">
        {titleList.map((t) => (
          <li key={t.id} data-id={t.id}>
            {t.year}: {t.title}
          </li>
        ))}
      </ul>
      <form onSubmit={submit}>
        <input aria-label="title" placeholder="Title" value={title} onChange={(e) => setTitle(e.target.value)} required />
        <input aria-label="year" type="number" value={year} onChange={(e) => setYear(e.target.value)} required />
        <button type="submit" disabled={added.loading}>Add title</button>
      </form>
      {added.error && <p role="alert">{added.error.message}</p>}
    </main>
  );
}
