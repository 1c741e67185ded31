import { useState } from 'react';
import { gql, useMutation, useQuery, useSubscription } from 'urql';

export const TITLES = gql`
  query Titles($authorId: Int!, $key: String!) {
    titleList(authorId: $authorId) { id title year }
    authorStats(authorId: $authorId) { authorId titleCount lastYear }
    freshness: product(key: $key) { key version computedAt stale }
  }
`;

// The typed mutation: its payload holds the affected products, typed;
// graphcache replaces the cached AuthorStats and Product (freshness) by
// identity, and updates.Mutation.addTitle writes the list into the query.
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
  const key = `title_list/${authorId}`;
  const [{ data, error, fetching }] = useQuery({ query: TITLES, variables: { authorId, key } });
  const [added, addTitle] = useMutation(ADD_TITLE);
  const [live] = useSubscription({ query: LIVE_TITLES, variables: { authorId }, pause: !subscribe });
  useSubscription({ query: LIVE_STATS, variables: { authorId }, pause: !subscribe });
  useSubscription({ query: LIVE_FRESHNESS, variables: { key }, pause: !subscribe });
  const [title, setTitle] = useState('');
  const [year, setYear] = useState(String(new Date().getFullYear()));

  if (error) return <p role="alert">{error.message}</p>;
  if (fetching || !data) return <p>Loading…</p>;
  const { titleList, authorStats, freshness } = data;

  async function submit(e) {
    e.preventDefault();
    const r = await addTitle({ authorId, title, year: Number(year) });
    if (!r.error) setTitle('');
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
        <button type="submit" disabled={added.fetching}>Add title</button>
      </form>
      {added.error && <p role="alert">{added.error.message}</p>}
    </main>
  );
}
