// cluster-key-slot (shipped with ioredis) has no types of its own.
declare module 'cluster-key-slot' {
  /** The Redis Cluster slot (0–16383) of a key, honouring a `{hash tag}`. */
  export default function calculateSlot (key: string): number
}
