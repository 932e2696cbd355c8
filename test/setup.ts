// Loaded before every test file (scripts/run-tests.mjs): the same polyfill every entry point loads.
import '../src/polyfill.ts'
