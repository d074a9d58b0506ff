/**
 * The CLI's help texts: `portcullis --help` for the overview, `portcullis tokens <command> --help`
 * for one command's usage, options and an example.
 */

/** Top-level help: the commands, and where each one's own help is. */
export const USAGE = `Usage: portcullis <command>

Commands:
  serve             run the gateway (configured by the environment)
  tokens create     create a token; prints it as JSON, with its api_key (shown once)
  tokens import     store tokens from a JSON file or stdin; all or nothing
  tokens list       one JSON line per token, without keys
  tokens show       one token as JSON
  tokens revoke     revoke a token by id or by api key

Run \`portcullis tokens <command> --help\` for a command's options and an example.

Redis comes from REDIS_URL / REDIS_CLUSTER_NODES / REDIS_KEY_PREFIX (a .env file is read too);
the token commands say on stderr which Redis they use.
Exit codes: 0 ok, 1 failure or not found, 2 bad arguments (nothing written).
`

/** `portcullis tokens --help`. */
export const TOKENS_USAGE = `Usage: portcullis tokens <command> [options]

Commands:
  create --rate-limit N --route PATTERN [...]   create a token
  import FILE|-                                 store tokens from a JSON file (- = stdin)
  list                                          one JSON line per token, without keys
  show ID                                       one token as JSON; exit 1 if there is none
  revoke ID_OR_KEY                              revoke a token; exit 1 if there is none

Run \`portcullis tokens <command> --help\` for a command's options and an example.
`

const PATTERNS = `Route patterns:
  "/api/v1/users/*"           the path and everything below it
  "/api/*/users"              * = exactly one segment
  "GET,HEAD /api/v1/users/*"  only these methods (HEAD is not implied by GET)`

const REDIS = 'Redis: REDIS_URL / REDIS_CLUSTER_NODES / REDIS_KEY_PREFIX (a .env file is read too).'

/** Each `tokens` command's own help. */
export const COMMAND_HELP: Record<string, string> = {
  create: `Usage: portcullis tokens create --rate-limit N --route PATTERN [--route PATTERN ...] [options]

Creates a token and prints it as JSON on stdout, with its api_key: it is shown this once.

Options:
  --rate-limit N        requests per window (required)
  --route PATTERN       a route the token may call; repeat it for more (at least one)
  --burst N             requests a full bucket admits back to back (default: the rate limit)
  --window-seconds N    the window the rate limit counts in (default RATE_LIMIT_WINDOW_SECONDS)
  --expires-at TIME     RFC 3339 instant from which the token is refused, e.g. 2027-12-31T23:59:59Z
  --ttl DURATION        or: expires after a whole number of s, m, h or d, e.g. 30d
  --name NAME           free text shown in lists and logs
  -h, --help            this help

${PATTERNS}

Example:
  portcullis tokens create --rate-limit 100 --burst 20 --ttl 30d --route '/api/v1/users/*' --name alice

${REDIS}
`,
  import: `Usage: portcullis tokens import FILE|-

Stores the tokens of a JSON file (- reads stdin): one object or an array of them. Every record is
checked first; if any is invalid, nothing is written (exit 2). Prints the id of each record.
Importing a record again (the same api_key) updates it; an id that belongs to another token is refused.

File format (api_key, rate_limit and allowed_routes are required):
  [
    {
      "api_key": "pc_a-long-random-secret-0001",
      "rate_limit": 100,
      "allowed_routes": ["/api/v1/users/*", "GET /api/v1/products/*"],
      "expires_at": "2027-12-31T23:59:59Z",
      "id": "tok_alicesintegr",
      "name": "Alice's integration",
      "burst": 20,
      "window_seconds": 60
    }
  ]
An id is optional: tok_ and 12 characters of a-z and 2-7; without one, a token keeps its id or
gets a new one.

${PATTERNS}

Options:
  -h, --help            this help

Examples:
  portcullis tokens import seed.json
  cat seed.json | portcullis tokens import -

${REDIS}
`,
  list: `Usage: portcullis tokens list

Prints one JSON line per token, without keys, on stdout; on stderr how many tokens were found under
which key prefix at which Redis (so an empty list from the wrong Redis is visible).

Options:
  -h, --help            this help

Example:
  portcullis tokens list | jq -r .id

${REDIS}
`,
  show: `Usage: portcullis tokens show ID

Prints one token as JSON, without its key; exit 1 if there is no token with that id, exit 2 if
ID is not a token id (tok_ and 12 characters of a-z and 2-7).

Options:
  -h, --help            this help

Example:
  portcullis tokens show tok_k3xq7m2vb4pa

${REDIS}
`,
  revoke: `Usage: portcullis tokens revoke ID_OR_KEY

Revokes a token by its id or by its api key (the key is never echoed); the very next request with
it is refused. Exit 1 if there is no such token.

Options:
  -h, --help            this help

Example:
  portcullis tokens revoke tok_k3xq7m2vb4pa

${REDIS}
`
}
