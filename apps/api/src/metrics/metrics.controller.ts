import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiProduces } from '@nestjs/swagger';
import { Registry } from 'prom-client';
import { Public } from '../common/auth.guard';
import { FarmMetrics } from './farm-metrics';

/** `GET /metrics`: Prometheus text format, public like the health probes. */
@Controller('metrics')
@Public()
export class MetricsController {
  constructor(private readonly metrics: FarmMetrics) {}

  @Get()
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  @ApiProduces(Registry.PROMETHEUS_CONTENT_TYPE)
  @ApiOkResponse({ description: 'Prometheus text exposition format 0.0.4', schema: { type: 'string' } })
  scrape(): Promise<string> {
    return this.metrics.render();
  }
}
