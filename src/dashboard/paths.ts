// Where the dashboard lives on the control server. A leaf: the control server tells a dashboard request
// by its path without loading the dashboard (routes.ts and the page), which it loads at the first one.
export const DASHBOARD_PATH = '/dashboard';

export function isDashboardPath(pathname: string): boolean {
  return pathname === DASHBOARD_PATH || pathname.startsWith(`${DASHBOARD_PATH}/`);
}
