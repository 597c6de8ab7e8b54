/**
 * `405 Method Not Allowed` with `Allow` for a path the app serves under other methods (RFC 9110
 * §15.5.6), instead of the 404 a router gives every unmatched request. Read from the app's own
 * routes, so a route added anywhere is covered without a second list to keep.
 */
import type { Express, RequestHandler } from 'express';

interface RouteLayer {
  /** Express sets it on layers mounted at the root (`app.use(router)`), whose routes keep their full paths. */
  slash?: boolean;
  route?: { path: unknown; methods: Record<string, boolean> };
  handle?: { stack?: RouteLayer[] };
}

interface ServedPath {
  pattern: RegExp;
  methods: Set<string>;
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `/api/:tenant/calls` → a matcher as Express's (case-insensitive, optional trailing slash); undefined for other path syntax. */
function matcherOf(path: string): RegExp | undefined {
  if (/[*?{}()]/.test(path)) return undefined;
  const source = path
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : escapeRegExp(segment)))
    .join('/');
  return new RegExp(`^${source}/?$`, 'i');
}

function servedPaths(stack: RouteLayer[], out: Map<string, ServedPath>): Map<string, ServedPath> {
  for (const layer of stack) {
    if (layer.route && typeof layer.route.path === 'string') {
      const methods = Object.keys(layer.route.methods).map((method) => method.toUpperCase());
      const pattern = matcherOf(layer.route.path);
      if (!pattern || methods.includes('_ALL')) continue;
      const served = out.get(layer.route.path) ?? { pattern, methods: new Set<string>() };
      for (const method of methods) served.methods.add(method);
      out.set(layer.route.path, served);
    } else if (layer.slash && layer.handle?.stack) {
      servedPaths(layer.handle.stack, out);
    }
  }
  return out;
}

/** Mount after every router: it only sees requests no route answered. OPTIONS gets 204 with Allow. */
export function methodNotAllowed(app: Express): RequestHandler {
  // Read at the first request, when every router is in place.
  let paths: ServedPath[] | undefined;
  return (req, res, next) => {
    paths ??= [...servedPaths((app as unknown as { router: { stack: RouteLayer[] } }).router.stack, new Map()).values()];
    const allowed = new Set<string>();
    for (const served of paths) if (served.pattern.test(req.path)) for (const method of served.methods) allowed.add(method);
    if (allowed.has('GET')) allowed.add('HEAD');
    if (allowed.size === 0 || allowed.has(req.method)) return next();
    const allow = [...allowed].sort();
    // OPTIONS asks what the path takes: the answer, not a refusal.
    if (req.method === 'OPTIONS') return void res.status(204).set('Allow', [...allow, 'OPTIONS'].sort().join(', ')).end();
    res
      .status(405)
      .set('Allow', allow.join(', '))
      .json({ error: 'method_not_allowed', message: `${req.method.slice(0, 20)} is not allowed on this path`, details: { allow } });
  };
}
