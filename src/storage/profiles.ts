import { profileSchema, type Profile } from '../twin/profile.js';
import type { Db } from './db.js';

/** Profiles that do not ship in models/: derived or calibrated ones, stored by id. */
export class ProfileRepository {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Stores a profile once; the same id again is the same content (ids hash it). */
  save(profile: Profile): void {
    this.db
      .prepare(
        'INSERT OR IGNORE INTO profiles (id, evidence, content, created_at) VALUES (?, ?, ?, ?)',
      )
      .run(
        profile.id,
        profile.evidence ?? 'derived',
        JSON.stringify(profile),
        this.now().toISOString(),
      );
  }

  all(): Profile[] {
    const rows = this.db.prepare('SELECT content FROM profiles ORDER BY id').all() as Array<{
      content: string;
    }>;
    return rows.map((r) => profileSchema.parse(JSON.parse(r.content)));
  }
}
