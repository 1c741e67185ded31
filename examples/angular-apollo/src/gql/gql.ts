/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  query Titles($authorId: Int!, $key: String!) {\n    titleList(authorId: $authorId) { id title year }\n    authorStats(authorId: $authorId) { authorId titleCount lastYear }\n    freshness: product(key: $key) { key version computedAt stale }\n  }\n": typeof types.TitlesDocument,
    "\n  mutation AddTitle($authorId: Int!, $title: String!, $year: Int!) {\n    addTitle(authorId: $authorId, title: $title, year: $year) {\n      title { id title year }\n      titleList { id title year }\n      authorStats { authorId titleCount lastYear }\n      products { key version computedAt stale }\n    }\n  }\n": typeof types.AddTitleDocument,
    "\n  subscription LiveTitles($authorId: Int!) {\n    titleList(authorId: $authorId) { id title year }\n  }\n": typeof types.LiveTitlesDocument,
    "\n  subscription LiveStats($authorId: Int!) {\n    authorStats(authorId: $authorId) { authorId titleCount lastYear }\n  }\n": typeof types.LiveStatsDocument,
    "\n  subscription LiveFreshness($key: String!) {\n    product(key: $key) { key version computedAt stale }\n  }\n": typeof types.LiveFreshnessDocument,
};
const documents: Documents = {
    "\n  query Titles($authorId: Int!, $key: String!) {\n    titleList(authorId: $authorId) { id title year }\n    authorStats(authorId: $authorId) { authorId titleCount lastYear }\n    freshness: product(key: $key) { key version computedAt stale }\n  }\n": types.TitlesDocument,
    "\n  mutation AddTitle($authorId: Int!, $title: String!, $year: Int!) {\n    addTitle(authorId: $authorId, title: $title, year: $year) {\n      title { id title year }\n      titleList { id title year }\n      authorStats { authorId titleCount lastYear }\n      products { key version computedAt stale }\n    }\n  }\n": types.AddTitleDocument,
    "\n  subscription LiveTitles($authorId: Int!) {\n    titleList(authorId: $authorId) { id title year }\n  }\n": types.LiveTitlesDocument,
    "\n  subscription LiveStats($authorId: Int!) {\n    authorStats(authorId: $authorId) { authorId titleCount lastYear }\n  }\n": types.LiveStatsDocument,
    "\n  subscription LiveFreshness($key: String!) {\n    product(key: $key) { key version computedAt stale }\n  }\n": types.LiveFreshnessDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Titles($authorId: Int!, $key: String!) {\n    titleList(authorId: $authorId) { id title year }\n    authorStats(authorId: $authorId) { authorId titleCount lastYear }\n    freshness: product(key: $key) { key version computedAt stale }\n  }\n"): (typeof documents)["\n  query Titles($authorId: Int!, $key: String!) {\n    titleList(authorId: $authorId) { id title year }\n    authorStats(authorId: $authorId) { authorId titleCount lastYear }\n    freshness: product(key: $key) { key version computedAt stale }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation AddTitle($authorId: Int!, $title: String!, $year: Int!) {\n    addTitle(authorId: $authorId, title: $title, year: $year) {\n      title { id title year }\n      titleList { id title year }\n      authorStats { authorId titleCount lastYear }\n      products { key version computedAt stale }\n    }\n  }\n"): (typeof documents)["\n  mutation AddTitle($authorId: Int!, $title: String!, $year: Int!) {\n    addTitle(authorId: $authorId, title: $title, year: $year) {\n      title { id title year }\n      titleList { id title year }\n      authorStats { authorId titleCount lastYear }\n      products { key version computedAt stale }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription LiveTitles($authorId: Int!) {\n    titleList(authorId: $authorId) { id title year }\n  }\n"): (typeof documents)["\n  subscription LiveTitles($authorId: Int!) {\n    titleList(authorId: $authorId) { id title year }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription LiveStats($authorId: Int!) {\n    authorStats(authorId: $authorId) { authorId titleCount lastYear }\n  }\n"): (typeof documents)["\n  subscription LiveStats($authorId: Int!) {\n    authorStats(authorId: $authorId) { authorId titleCount lastYear }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription LiveFreshness($key: String!) {\n    product(key: $key) { key version computedAt stale }\n  }\n"): (typeof documents)["\n  subscription LiveFreshness($key: String!) {\n    product(key: $key) { key version computedAt stale }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;