import { Component, DestroyRef, inject, signal } from '@angular/core';
import { takeUntilDestroyed, toSignal } from '@angular/core/rxjs-interop';
import { FormsModule } from '@angular/forms';
import { Apollo } from 'apollo-angular';
import { map } from 'rxjs';
import { authorId, live } from './app.config';
import { graphql } from '../gql';
import type { TitlesQuery } from '../gql/graphql';

// Typed documents: graphql() returns each operation with its result and
// variables types, which GraphQL Code Generator writes into src/gql/ from
// the gateway's schema (schema.graphql, printed by `kck schema`; `make
// codegen`). A field the schema does not have, or a variable of the wrong
// type, fails the build.
const TITLES = graphql(`
  query Titles($authorId: Int!, $key: String!) {
    titleList(authorId: $authorId) { id title year }
    authorStats(authorId: $authorId) { authorId titleCount lastYear }
    freshness: product(key: $key) { key version computedAt stale }
  }
`);

type Title = NonNullable<TitlesQuery['titleList']>[number];

// The typed mutation: its payload holds the affected products, typed. The
// AuthorStats and the Product (freshness) it returns replace the cached ones
// by identity; the list at the root is written into the query in update.
const ADD_TITLE = graphql(`
  mutation AddTitle($authorId: Int!, $title: String!, $year: Int!) {
    addTitle(authorId: $authorId, title: $title, year: $year) {
      title { id title year }
      titleList { id title year }
      authorStats { authorId titleCount lastYear }
      products { key version computedAt stale }
    }
  }
`);

// Live updates: the gateway pushes each new version of these products.
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

@Component({
  selector: 'app-root',
  imports: [FormsModule],
  template: `
    <main>
      <h1>Titles of author {{ authorId }}</h1>
      <p data-testid="live">{{ live() }}</p>
      @if (data(); as d) {
        <p data-testid="stats">
          @if (d.authorStats; as s) { {{ s.titleCount }} titles, the latest from {{ s.lastYear }} } @else { no statistics }
        </p>
        @if (d.freshness; as f) {
          <p data-testid="freshness">
            version <code data-testid="version">{{ f.version }}</code>, computed
            <time [attr.datetime]="f.computedAt">{{ f.computedAt }}</time>,
            <span data-testid="stale">{{ f.stale ? 'stale' : 'fresh' }}</span>
          </p>
        }
        <ul data-testid="titles">
          @for (t of d.titleList ?? []; track t.id) {
            <li [attr.data-id]="t.id">{{ t.year }}: {{ t.title }}</li>
          }
        </ul>
      } @else {
        <p>Loading…</p>
      }
      <form (ngSubmit)="add()">
        <input aria-label="title" placeholder="Title" name="title" [(ngModel)]="title" required />
        <input aria-label="year" type="number" name="year" [(ngModel)]="year" required />
        <button type="submit" [disabled]="adding()">Add title</button>
      </form>
      @if (error(); as e) { <p role="alert">{{ e }}</p> }
    </main>
  `,
})
export class App {
  private readonly apollo = inject(Apollo);
  private readonly destroyRef = inject(DestroyRef);
  readonly authorId = authorId;
  private readonly variables = { authorId, key: `title_list/${authorId}` };

  readonly data = toSignal(
    this.apollo.watchQuery({ query: TITLES, variables: this.variables }).valueChanges.pipe(
      map((r) => (r.dataState === 'complete' ? r.data : undefined)),
    ),
  );
  readonly live = signal('connecting…');
  readonly adding = signal(false);
  readonly error = signal<string | null>(null);
  title = '';
  year = new Date().getFullYear();

  constructor() {
    if (!live) {
      this.live.set('not subscribed');
      return;
    }
    this.apollo
      .subscribe({ query: LIVE_TITLES, variables: { authorId } })
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe({
        next: ({ data }) => {
          if (data?.titleList) this.writeTitles(data.titleList);
          this.live.set('live');
        },
        error: (e: Error) => this.live.set(`not live: ${e.message}`),
      });
    this.apollo.subscribe({ query: LIVE_STATS, variables: { authorId } }).pipe(takeUntilDestroyed(this.destroyRef)).subscribe();
    this.apollo
      .subscribe({ query: LIVE_FRESHNESS, variables: { key: this.variables.key } })
      .pipe(takeUntilDestroyed(this.destroyRef))
      .subscribe();
  }

  // A list is a field of the query at the root, not an entity: write it in.
  private writeTitles(titleList: Title[]) {
    this.apollo.client.cache.updateQuery({ query: TITLES, variables: this.variables }, (q) => q && { ...q, titleList });
  }

  add() {
    this.adding.set(true);
    this.error.set(null);
    this.apollo
      .mutate({
        mutation: ADD_TITLE,
        variables: { authorId, title: this.title, year: Number(this.year) },
        // Read-your-writes without a refetch: the payload's list is the fresh one.
        update: (_cache, { data }) => {
          if (data?.addTitle.titleList) this.writeTitles(data.addTitle.titleList);
        },
      })
      .subscribe({
        next: () => {
          this.title = '';
          this.adding.set(false);
        },
        error: (e: Error) => {
          this.error.set(e.message);
          this.adding.set(false);
        },
      });
  }
}
