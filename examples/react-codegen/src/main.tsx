import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';

// The gateway: ?gateway=http://host:port, else VITE_KCK_URL, else go run .'s.
const params = new URLSearchParams(location.search);
const gateway = params.get('gateway') || import.meta.env.VITE_KCK_URL || 'http://localhost:8080';
const authorId = Number(params.get('author') || 42);
// ?live=0: no subscriptions (the browser test checks read-your-writes alone).
const live = params.get('live') !== '0';

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App gateway={gateway} authorId={authorId} live={live} />
  </StrictMode>,
);
