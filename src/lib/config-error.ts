/** A configuration problem; the message is one line that names the variable. */
export class ConfigError extends Error {
  constructor (readonly variable: string, problem: string) {
    super(`${variable} ${problem}`)
    this.name = 'ConfigError'
  }
}
