import { Type } from '@sinclair/typebox'

/** The body of every answer the gateway makes itself (src/lib/errors.ts). */
export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'machine-readable code, e.g. TOKEN_INVALID, RATE_LIMITED' }),
  error: Type.String({ description: 'HTTP reason phrase' }),
  message: Type.String()
}, { $id: undefined, title: 'Error' })
