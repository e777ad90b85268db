// The read-only dashboard: the view model both `nserve top` and the page draw (view.ts), the page and its
// routes on the control server (page.ts, routes.ts), its login tokens (token.ts) and the terminal view
// (text.ts).
export { COOKIE, crossSite, DASHBOARD_PATH, Dashboard, isDashboardPath, SECURITY_HEADERS } from './routes.js';
export { renderTop, type TopStatus } from './text.js';
export { checkLoginToken, checkSession, LOGIN_TTL_MS, makeLoginToken, makeSession } from './token.js';
export { buildView, type DashboardView, type Sample, Samples, sampleOf } from './view.js';
