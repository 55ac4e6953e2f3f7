import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['{runtime,sdk-as,extensions,registry,control,examples}/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/assembly/**'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
