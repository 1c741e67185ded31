import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { graphql } from './gql';
import type { TitlesQuery } from './gql/graphql';
import { kck } from './client';

// Typed documents: GraphQL Code Generator's client preset checks them
// against the schema `kck schema` prints and gives each its result and
// variables types, and its hash in the trusted documents manifest.
const TITLES = graphql(`
  query Titles($authorId: Int!, $key: String!) {
    titleList(authorId: $authorId) { id title year }
    authorStats(authorId: $authorId) { authorId titleCount lastYear }
    freshness: product(key: $key) { key version computedAt stale }
  }
`);

// The typed mutation: its payload holds the affected products, fresh
// (read-your-writes), written into the page's state as they come.
const ADD_TITLE = graphql(`
  mutation AddTitle($authorId: Int!, $title: String!, $year: Int!) {
    addTitle(authorId: $authorId, title: $title, year: $year) {
      titleList { id title year }
      authorStats { authorId titleCount lastYear }
      products { key version computedAt stale }
    }
  }
`);

const LIVE_TITLES = graphql(`
  subscription LiveTitles($authorId: Int!) {
    titleList(authorId: $authorId) { id title year }
  }
`);
const LIVE_STATS = graphql(`
  subscription LiveStats($authorId: Int!) {
    authorStats(authorId: $authorId) { authorId titleCount lastYear }
  }
`);
const LIVE_FRESHNESS = graphql(`
  subscription LiveFreshness($key: String!) {
    product(key: $key) { key version computedAt stale }
  }
`);

type State = TitlesQuery;

export function App({ gateway, authorId, live: subscribe }: { gateway: string; authorId: number; live: boolean }) {
  const client = useMemo(() => kck(gateway), [gateway]);
  const key = `title_list/${authorId}`;
  const [data, setData] = useState<State | null>(null);
  const [error, setError] = useState<string>('');
  const [live, setLive] = useState<string>(subscribe ? 'connecting…' : 'not subscribed');
  const [title, setTitle] = useState('');
  const [year, setYear] = useState(String(new Date().getFullYear()));
  const [adding, setAdding] = useState(false);

  useEffect(() => {
    client.query(TITLES, { authorId, key }).then(setData, (e) => setError(String(e)));
  }, [client, authorId, key]);

  useEffect(() => {
    if (!subscribe) return;
    const fail = (e: unknown) => setLive(`not live: ${e instanceof Error ? e.message : JSON.stringify(e)}`);
    const stops = [
      client.subscribe(LIVE_TITLES, { authorId }, (d) => {
        setLive('live');
        if (d.titleList) setData((s) => s && { ...s, titleList: d.titleList });
      }, fail),
      client.subscribe(LIVE_STATS, { authorId }, (d) => setData((s) => s && { ...s, authorStats: d.authorStats }), fail),
      client.subscribe(LIVE_FRESHNESS, { key }, (d) => setData((s) => s && { ...s, freshness: d.product }), fail),
    ];
    return () => stops.forEach((stop) => stop());
  }, [client, subscribe, authorId, key]);

  if (error) return <p role="alert">{error}</p>;
  if (!data) return <p>Loading…</p>;
  const { titleList, authorStats, freshness } = data;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setAdding(true);
    try {
      const r = await client.mutate(ADD_TITLE, { authorId, title, year: Number(year) });
      const fresh = r.addTitle.products.find((p) => p.key === key);
      setData((s) => s && {
        ...s,
        titleList: r.addTitle.titleList ?? s.titleList,
        authorStats: r.addTitle.authorStats ?? s.authorStats,
        freshness: fresh ? { ...s.freshness, ...fresh } : s.freshness,
      });
      setTitle('');
    } catch (err) {
      setError(String(err));
    } finally {
      setAdding(false);
    }
  }

  return (
    <main>
      <h1>Titles of author {authorId}</h1>
      <p data-testid="live">{live}</p>
      <p data-testid="stats">
        {authorStats ? `${authorStats.titleCount} titles, the latest from ${authorStats.lastYear}` : 'no statistics'}
      </p>
      <p data-testid="freshness">
        version <code data-testid="version">{freshness.version}</code>, computed{' '}
        <time dateTime={freshness.computedAt}>{new Date(freshness.computedAt).toLocaleTimeString()}</time>,{' '}
        <span data-testid="stale">{freshness.stale ? 'stale' : 'fresh'}</span>
      </p>
      <ul data-testid="titles">
        {(titleList ?? []).map((t) => (
          <li key={t.id} data-id={t.id}>
            {t.year}: {t.title}
          </li>
        ))}
      </ul>
      <form onSubmit={submit}>
        <input aria-label="title" placeholder="Title" value={title} onChange={(e) => setTitle(e.target.value)} required />
        <input aria-label="year" type="number" value={year} onChange={(e) => setYear(e.target.value)} required />
        <button type="submit" disabled={adding}>Add title</button>
      </form>
    </main>
  );
}
