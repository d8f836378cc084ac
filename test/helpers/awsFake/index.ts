import Dockerode from 'dockerode';
import { FakeEcr } from './ecr.js';
import { FakeLogs } from './logs.js';
import { loadModel, type ModelName, type ServiceModel } from './models.js';
import { FakeAwsServer } from './server.js';
import { FakeTrainingJobs } from './trainingJobs.js';

export { awsModelsDir } from './models.js';
export { FAKE_LABEL, LOG_GROUP } from './trainingJobs.js';
export type { RecordedCall } from './server.js';

export const FAKE_ACCOUNT = '123456789012';
export const FAKE_REGION = 'us-east-1';
export const FAKE_PRINCIPAL = 'liftoff-test';

export interface FakeAws {
  server: FakeAwsServer;
  sagemaker: FakeTrainingJobs;
  logs: FakeLogs;
  ecr: FakeEcr;
  docker: Dockerode;
  close(): Promise<void>;
}

/**
 * Liftoff's test AWS endpoint (one loopback port for STS, SageMaker, CloudWatch Logs and ECR, plus container
 * credentials), validated by botocore's models from `modelsDir`. See test/awsFake/fakeAws.test.ts for what it
 * refuses and how it compares with moto_server.
 */
export async function startFakeAws(modelsDir: string): Promise<FakeAws> {
  const models = Object.fromEntries(
    (['sagemaker', 'logs', 'ecr', 'sts'] as const).map((n) => [n, loadModel(modelsDir, n)]),
  ) as Record<ModelName, ServiceModel>;
  const server = new FakeAwsServer(models);
  const docker = new Dockerode();
  const logs = new FakeLogs(server, FAKE_ACCOUNT, FAKE_REGION);
  const ecr = new FakeEcr(server, FAKE_ACCOUNT);
  const sagemaker = new FakeTrainingJobs(server, docker, logs, ecr, FAKE_ACCOUNT, FAKE_REGION);
  server.on('sts', 'GetCallerIdentity', (i) => ({
    UserId: `AROAFAKE:${String(i.__key)}`,
    Account: FAKE_ACCOUNT,
    Arn: `arn:aws:sts::${FAKE_ACCOUNT}:assumed-role/${FAKE_PRINCIPAL}/${String(i.__key)}`,
  }));
  await ecr.start();
  await server.listen();
  return {
    server,
    sagemaker,
    logs,
    ecr,
    docker,
    async close() {
      await sagemaker.close();
      await server.close();
      await ecr.stop(docker);
    },
  };
}
