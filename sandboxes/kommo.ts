// The Kommo sandbox lives in ./kommo/ (one module per group of routes); this path keeps old imports working.
export * from './kommo/index.js';
