// Runs before every test file: what a file makes on disk goes when the file ends.
import { afterAll } from 'vitest';
import { removeScratchDirs } from './scratch.js';

afterAll(removeScratchDirs);
