import neo from 'neostandard'

export default [
  ...neo({ ts: true }),
  { ignores: ['dist/**', 'coverage/**', '.tap/**', 'node_modules/**'] }
]
