/**
 * The Node.js options the gateway runs with: the image's CMD (Dockerfile), `npm start`, and every
 * contender of `npm run bench` (scripts/bench-children.ts), so the bench measures the runtime
 * that ships (docs/performance.md, "Runtime"). test/dockerfile.test.ts and test/package.test.ts
 * hold the Dockerfile and package.json to this list.
 *
 * `--max-semi-space-size=32`: V8's young generation grows to 32 MB semi-spaces instead of 16.
 * A proxied request allocates ~30 KB, nearly all of it dead when the request ends. With the
 * default, at 7 000 req/s on one core, a scavenge runs every ~60 ms and what each promotes fills
 * the old generation in ~3 s; each full collection then stalls the event loop for 20–40 ms (its
 * pause, its array-buffer sweep, and its background marking on the same core), the p99 of every
 * request behind it. With 32 MB no full collection ran in 15 s of that load, and CPU per request
 * fell ~5 %, for ~50 MB more RSS under load.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32']
