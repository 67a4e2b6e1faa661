import { ApiProperty } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsString,
  MaxLength,
  MinLength,
} from 'class-validator';
import { SCOPES, type Scope } from '@farm/domain';

/** `POST /v1/tokens`. */
export class CreateApiTokenDto {
  @ApiProperty({ description: 'What the token is for, e.g. "ci-main"', minLength: 1, maxLength: 100 })
  @IsString()
  @MinLength(1)
  @MaxLength(100)
  name!: string;

  @ApiProperty({
    description: 'What the token may do; admin grants every scope',
    type: [String],
    enum: SCOPES,
    minItems: 1,
    example: ['builds:read', 'builds:write'],
  })
  @IsArray()
  @ArrayMinSize(1, { message: 'scopes must list at least one scope' })
  @ArrayMaxSize(SCOPES.length)
  @ArrayUnique({ message: 'scopes must not repeat a scope' })
  @IsIn(SCOPES, { each: true, message: `each scope must be one of ${SCOPES.join(', ')}` })
  scopes!: Scope[];
}
