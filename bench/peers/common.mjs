// What the Node peers share: the schema of the one field they serve, the
// Postgres pool and the same SQL as KCK's title_list primer (demo/sql/title_list.sql).
import pg from 'pg';

export const typeDefs = /* GraphQL */ `
  type Title { id: Int! authorId: Int! title: String! year: Int! }
  type Query { titleList(authorId: Int!): [Title!] }
`;

export function pool() {
  const url = process.env.PEER_POSTGRES_URL;
  if (!url) throw new Error('PEER_POSTGRES_URL is not set');
  return new pg.Pool({ connectionString: url, max: 8 });
}

export function titleList(db) {
  return async (_parent, { authorId }) => {
    const { rows } = await db.query(
      'SELECT id, author_id AS "authorId", title, year FROM titles WHERE author_id = $1 ORDER BY year, id',
      [authorId],
    );
    return rows;
  };
}

export function port() {
  const p = Number(process.env.PEER_PORT);
  if (!p) throw new Error('PEER_PORT is not set');
  return p;
}
