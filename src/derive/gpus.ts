import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export const gpuSchema = z.object({
  id: z.string(),
  name: z.string(),
  memoryGiB: z.number().positive(),
  /** What CUDA reports as total (torch.cuda.mem_get_info), where known. */
  cudaTotalGiB: z.number().positive().optional(),
  hbmBandwidthGBps: z.number().positive(),
  bf16DenseTflops: z.number().positive(),
  /** One direction of the host link: adapter loads cross it. */
  hostLinkGBps: z.number().positive(),
  /** Fields not on a datasheet, estimated as the source explains. */
  estimated: z.array(z.string()).optional(),
  source: z.string().min(1),
});
export type Gpu = z.infer<typeof gpuSchema>;

export const gpuCatalogSchema = z.object({ about: z.string(), gpus: z.array(gpuSchema).min(1) });

export function readGpuCatalog(modelsDir: string): Gpu[] {
  return gpuCatalogSchema.parse(
    JSON.parse(readFileSync(join(modelsDir, 'gpus', 'catalog.json'), 'utf8')),
  ).gpus;
}

export const architectureTableSchema = z.object({
  about: z.string(),
  vllmVersion: z.string(),
  loraExtraVocabSize: z.number().int().min(0),
  architectures: z.record(
    z.string(),
    z.object({ embeddingLora: z.boolean(), source: z.string().min(1) }),
  ),
});
export type ArchitectureTable = z.infer<typeof architectureTableSchema>;

export function readArchitectures(modelsDir: string, vllmVersion = '0.8.5'): ArchitectureTable {
  return architectureTableSchema.parse(
    JSON.parse(readFileSync(join(modelsDir, 'architectures', `vllm-${vllmVersion}.json`), 'utf8')),
  );
}
